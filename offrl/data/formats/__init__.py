"""One module per dataset format; ``offrl.data.loaders.load_dataset`` picks among them."""

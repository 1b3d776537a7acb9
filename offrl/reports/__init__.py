"""Self-contained HTML reports (plots embedded as PNG, no scripts or external files): ``dataset`` for
``offrl dataset report``, ``runs`` for ``offrl report``; ``html`` holds what they share."""

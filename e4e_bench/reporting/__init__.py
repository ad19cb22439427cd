"""Results and reports: the files a run writes, its tables and plots, `report` and the drift check."""

"""specsearch.app.widgets: the app's reusable widgets."""

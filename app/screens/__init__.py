"""specsearch.app.screens: one module per screen."""

"""Belgian conventions for the languages whose Django defaults differ (``FORMAT_MODULE_PATH``)."""

from django.urls import path

from extensions import signin, views

app_name = "store"
urlpatterns = [
    path("", views.store, name="index"),
    path("path-preview/", views.path_preview, name="path_preview"),
    path("installed/<int:installation_pk>/", views.manage, name="manage"),
    path("installed/<int:installation_pk>/test/", views.test_connection, name="test"),
    path("installed/<int:installation_pk>/active/", views.toggle_active, name="active"),
    path("installed/<int:installation_pk>/uninstall/", views.uninstall, name="uninstall"),
    path("installed/<int:installation_pk>/reconnect/", signin.reconnect, name="reconnect"),
    path("signin/callback/", signin.signin_callback, name="signin_callback"),
    path("<slug:connector_key>/", views.extension, name="extension"),
    path("<slug:connector_key>/install/", views.install, name="install"),
    path("<slug:connector_key>/configure/", views.configure, name="configure"),
]

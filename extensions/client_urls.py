"""The Integrations tab of a client, mounted under /clients/<client_pk>/integrations/."""

from django.urls import path

from extensions import backfill_views, views

app_name = "integrations"
urlpatterns = [
    path("", views.client_integrations, name="list"),
    path("add/", views.add_integration, name="add"),
    path("add/<int:installation_pk>/", views.configure_integration, name="configure"),
    path("<int:integration_pk>/edit/", views.edit_integration, name="edit"),
    path("<int:integration_pk>/test/", views.test_integration, name="test"),
    path("<int:integration_pk>/remove/", views.remove_integration, name="remove"),
    path(
        "<int:integration_pk>/backfill/",
        backfill_views.backfill_integration,
        name="backfill",
    ),
]

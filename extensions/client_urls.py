"""The Integrations tab of a client, mounted under /clients/<client_pk>/integrations/."""

from django.urls import path

from extensions import views

app_name = "integrations"
urlpatterns = [
    path("", views.client_integrations, name="list"),
]

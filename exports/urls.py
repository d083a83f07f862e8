"""Mounted under /clients/<client_pk>/documents/<document_pk>/exports/."""

from django.urls import path

from exports import views

app_name = "exports"
urlpatterns = [
    path("<int:exportjob_pk>/resend/", views.resend, name="resend"),
    path("<int:exportjob_pk>/state/", views.state, name="state"),
]

from django.urls import path

from clients import views

app_name = "clients"
urlpatterns = [
    path("", views.client_list, name="list"),
    path("<int:client_pk>/", views.client_detail, name="detail"),
    path("<int:client_pk>/documents/", views.document_list, name="documents"),
    path(
        "<int:client_pk>/documents/<int:document_pk>/",
        views.document_detail,
        name="document_detail",
    ),
    path(
        "<int:client_pk>/documents/<int:document_pk>/attachment",
        views.document_attachment,
        name="document_attachment",
    ),
    path(
        "<int:client_pk>/documents/<int:document_pk>/original",
        views.document_download,
        name="document_download",
    ),
    path(
        "<int:client_pk>/documents/<int:document_pk>/release",
        views.document_release,
        name="document_release",
    ),
]

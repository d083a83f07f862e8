from django.urls import path

from extensions import views

app_name = "store"
urlpatterns = [
    path("", views.store, name="index"),
]

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.i18n import set_language

from partnerspace import notifications, views

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(
            template_name="registration/login.html", redirect_authenticated_user=True
        ),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("language/", set_language, name="set_language"),
    path("", views.dashboard, name="dashboard"),
    path("firm/switch/", views.switch_firm, name="switch_firm"),
    path("notifications/", notifications.notifications, name="notifications"),
    path("clients/", include("clients.urls")),
    path("clients/<int:client_pk>/integrations/", include("extensions.client_urls")),
    path(
        "clients/<int:client_pk>/documents/<int:document_pk>/exports/",
        include("exports.urls"),
    ),
    path("store/", include("extensions.urls")),
    path("admin/", admin.site.urls),
]

handler403 = "partnerspace.views.forbidden"

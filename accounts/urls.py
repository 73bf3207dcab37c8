from django.urls import path

from accounts import views

urlpatterns = [
    path("two-factor/", views.otp_setup, name="otp-setup"),
    path("two-factor/backup-codes/", views.backup_codes, name="backup-codes"),
    path("sudo/", views.sudo, name="sudo"),
    path("sessions/", views.my_sessions, name="sessions"),
    path("sessions/<int:pk>/revoke/", views.revoke_session, name="session-revoke"),
]

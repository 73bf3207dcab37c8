from django.urls import path

from . import views

urlpatterns = [
    path("", views.task_list, name="task_list"),
    path("compose/", views.compose, name="compose"),
    path("compose/members.json", views.group_members, name="compose_members"),
    path("tasks/<int:pk>/", views.task_detail, name="task_detail"),
    path("tasks/<int:pk>/progress.json", views.task_progress, name="task_progress"),
    path("tasks/<int:pk>/<str:action>/", views.task_action, name="task_action"),
    path("templates/<int:pk>/preview/", views.template_preview, name="template_preview"),
]

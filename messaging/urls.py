from django.urls import path

from . import views, views_conversations, views_inbox, views_reports

urlpatterns = [
    path("", views.task_list, name="task_list"),
    path("compose/", views.compose, name="compose"),
    path("compose/members.json", views.group_members, name="compose_members"),
    path("tasks/<int:pk>/", views.task_detail, name="task_detail"),
    path("tasks/<int:pk>/progress.json", views.task_progress, name="task_progress"),
    path("reports/", views_reports.report_overview, name="report_overview"),
    path("tasks/<int:pk>/report/", views_reports.task_report, name="task_report"),
    path("tasks/<int:pk>/report.csv", views_reports.task_report_csv, name="task_report_csv"),
    path("tasks/<int:pk>/report.xlsx", views_reports.task_report_xlsx, name="task_report_xlsx"),
    path("tasks/<int:pk>/<str:action>/", views.task_action, name="task_action"),
    path("templates/<int:pk>/preview/", views.template_preview, name="template_preview"),
    path("inbox/", views_inbox.inbox, name="inbox"),
    path("inbox.json", views_inbox.inbox_poll, name="inbox_poll"),
    path("conversations/<int:account_id>/<str:chat_wxid>/", views_conversations.conversation, name="conversation"),
    path("conversations/<int:account_id>/<str:chat_wxid>/messages.json", views_conversations.conversation_poll,
         name="conversation_poll"),
    path("conversations/<int:account_id>/<str:chat_wxid>/read/", views_conversations.conversation_read,
         name="conversation_read"),
]

from django.urls import path

from . import views

urlpatterns = [
    path("conversations/<int:account_id>/<str:chat_wxid>/tags/", views.conversation_tags, name="conversation_tags"),
]

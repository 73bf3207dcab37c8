from rest_framework.routers import SimpleRouter

from . import conversations, views

router = SimpleRouter()
router.register("messaging/messages", views.MessageViewSet, basename="message")
router.register("messaging/conversations", conversations.ConversationViewSet, basename="conversation")
router.register("messaging/tasks", views.MessageTaskViewSet, basename="messagetask")
router.register("messaging/receivers", views.MessageReceiverViewSet, basename="messagereceiver")
router.register("messaging/templates", views.MessageTemplateViewSet, basename="messagetemplate")

urlpatterns = router.urls

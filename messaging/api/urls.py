from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter()
router.register("messaging/messages", views.MessageViewSet, basename="message")
router.register("messaging/tasks", views.MessageTaskViewSet, basename="messagetask")
router.register("messaging/receivers", views.MessageReceiverViewSet, basename="messagereceiver")
router.register("messaging/templates", views.MessageTemplateViewSet, basename="messagetemplate")

urlpatterns = router.urls

from rest_framework.routers import DefaultRouter

from . import views

router = DefaultRouter()
router.register("wework-accounts", views.WeworkAccountViewSet, basename="weworkaccount")
router.register("contacts", views.ContactViewSet, basename="contact")
router.register("groups", views.GroupViewSet, basename="group")
router.register("group-members", views.GroupMemberViewSet, basename="groupmember")

urlpatterns = router.urls

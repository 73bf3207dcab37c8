from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter()  # the one API root is wework/api/urls.py's
router.register("wework-accounts", views.WeworkAccountViewSet, basename="weworkaccount")
router.register("contacts", views.ContactViewSet, basename="contact")
router.register("groups", views.GroupViewSet, basename="group")
router.register("group-members", views.GroupMemberViewSet, basename="groupmember")
# QR login under the instances app's URLs: /instances/{id}/logins/...
router.register("instances", views.InstanceLoginViewSet, basename="instancelogin")

urlpatterns = router.urls

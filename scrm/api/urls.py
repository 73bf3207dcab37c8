from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter()  # the one API root is wework/api/urls.py's
router.register("scrm/tag-groups", views.TagGroupViewSet, basename="scrm-taggroup")
router.register("scrm/tags", views.TagViewSet, basename="scrm-tag")
router.register("scrm/contacts", views.TaggedContactViewSet, basename="scrm-contact")
router.register("scrm/contact-tags", views.ContactTagViewSet, basename="scrm-contacttag")
router.register("scrm/tag-rules", views.TagRuleViewSet, basename="scrm-tagrule")
router.register("scrm/segments", views.SegmentViewSet, basename="scrm-segment")
router.register("scrm/opt-out-keywords", views.OptOutKeywordViewSet, basename="scrm-optoutkeyword")
router.register("scrm/opt-outs", views.OptOutViewSet, basename="scrm-optout")
router.register("scrm/welcome-messages", views.WelcomeMessageViewSet, basename="scrm-welcomemessage")
router.register("scrm/auto-replies", views.AutoReplyViewSet, basename="scrm-autoreply")
router.register("scrm/sensitive-words", views.SensitiveWordViewSet, basename="scrm-sensitiveword")

urlpatterns = router.urls

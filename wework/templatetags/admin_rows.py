"""`{% planned_result_list cl %}`: Django's `{% result_list cl %}`, with the rows of the
changelists that have a row plan rendered from it (wework/admin_rows.py)."""
from django import template
from django.contrib.admin.templatetags.admin_list import result_headers, result_list
from django.contrib.admin.templatetags.base import InclusionAdminNode

from wework.admin_rows import planned_results

register = template.Library()


def planned_result_list(cl):
    rows = planned_results(cl)
    if rows is None:
        return result_list(cl)
    headers = list(result_headers(cl))
    return {
        "cl": cl,
        "result_hidden_fields": [],  # only editable columns have them: never planned
        "result_headers": headers,
        "num_sorted_fields": sum(1 for h in headers if h["sortable"] and h["sorted"]),
        "results": rows,
    }


@register.tag(name="planned_result_list")
def planned_result_list_tag(parser, token):
    return InclusionAdminNode("planned_result_list", parser, token, func=planned_result_list,
                              template_name="change_list_results.html", takes_context=False)

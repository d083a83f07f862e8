"""Firms and their members, and what every admin page searching companies shares."""

from django.contrib import admin

from partnerspace.enterprise import normalize
from partnerspace.models import Membership, Partner


class EnterpriseNumberSearch:
    """Search finds an enterprise number however the operator writes it ("BE 0123.456.749"
    is stored as "0123456749"), besides what the search fields find as typed."""

    def get_search_results(self, request, queryset, search_term):
        found, duplicates = super().get_search_results(request, queryset, search_term)
        number = normalize(search_term)
        if number != search_term.strip() and len(number) == 10 and number.isdigit():
            more, more_duplicates = super().get_search_results(request, queryset, number)
            return found | more, duplicates or more_duplicates
        return found, duplicates


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Partner)
class PartnerAdmin(EnterpriseNumberSearch, admin.ModelAdmin):
    list_display = ["name", "enterprise_number", "created_at"]
    search_fields = ["name", "enterprise_number"]
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "partner", "role", "created_at"]
    list_filter = ["role", "partner"]
    search_fields = ["user__username", "user__email", "partner__name"]
    autocomplete_fields = ["user", "partner"]

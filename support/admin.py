"""Support staff's desk: tickets with filters (status, overdue), the conversation, and an answer
field that goes through services.staff_reply (audited, e-mails the customer)."""

from django import forms
from django.contrib import admin, messages
from django.utils import timezone

from support import services
from support.exceptions import TicketClosed
from support.models import Ticket, TicketMessage


class OverdueFilter(admin.SimpleListFilter):
    title = "first response"
    parameter_name = "overdue"

    def lookups(self, request, model_admin):
        return [("yes", "Overdue"), ("no", "Not overdue")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.overdue()
        if self.value() == "no":
            return queryset.exclude(pk__in=Ticket.objects.overdue().values("pk"))
        return queryset


class TicketMessageInline(admin.TabularInline):
    model = TicketMessage
    extra = 0
    can_delete = False
    fields = ["created_at", "author_email", "is_staff", "body"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class TicketAdminForm(forms.ModelForm):
    staff_answer = forms.CharField(
        label="Answer the customer",
        required=False,
        widget=forms.Textarea(attrs={"rows": 6, "cols": 80}),
        help_text="Sent to the customer by e-mail and shown on their ticket; marks it answered.",
    )

    class Meta:
        model = Ticket
        fields = ["priority"]

    def clean_staff_answer(self):
        answer = self.cleaned_data["staff_answer"].strip()
        if answer and self.instance.is_closed:
            raise forms.ValidationError("This ticket is closed; it cannot be answered.")
        return answer


@admin.action(description="Close selected tickets")
def close_tickets(modeladmin, request, queryset):
    for ticket in queryset:
        services.close_as_staff(ticket)
    modeladmin.message_user(request, f"Closed {queryset.count()} ticket(s).")


@admin.register(Ticket)
class TicketAdmin(admin.ModelAdmin):
    form = TicketAdminForm
    list_display = [
        "id",
        "subject",
        "tenant",
        "status",
        "priority",
        "created_at",
        "first_response_due_at",
        "overdue",
    ]
    list_filter = ["status", OverdueFilter, "priority"]
    search_fields = ["subject", "tenant__name", "opened_by__email"]
    list_select_related = ["tenant"]
    readonly_fields = [
        "tenant",
        "opened_by",
        "subject",
        "status",
        "created_at",
        "first_response_due_at",
        "first_responded_at",
        "closed_at",
    ]
    fields = [*readonly_fields[:4], "priority", *readonly_fields[4:], "staff_answer"]
    inlines = [TicketMessageInline]
    actions = [close_tickets]

    @admin.display(boolean=True, description="overdue")
    def overdue(self, ticket: Ticket) -> bool:
        return ticket.is_overdue

    def has_add_permission(self, request) -> bool:
        return False  # customers open tickets; staff answer them

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        answer = form.cleaned_data.get("staff_answer")
        if not answer:
            return
        try:
            services.staff_reply(
                obj, staff=request.user, body=answer, ip=request.META.get("REMOTE_ADDR")
            )
        except TicketClosed as error:  # closed between the form's check and now
            self.message_user(request, error.detail, level=messages.WARNING)
            return
        obj.refresh_from_db()
        self.message_user(request, f"Answer sent to the customer at {timezone.now():%H:%M} UTC.")

"""Portal pages: dashboard, new-instance wizard, instance detail, snapshots."""

from django.urls import path

from portal.instances import snapshots, views, wizard

urlpatterns = [
    path("", views.DashboardPage.as_view(), name="dashboard"),
    path("instances/cards/", views.CardsPartial.as_view(), name="instance-cards"),
    path("instances/new/", wizard.WorkloadStep.as_view(), name="instances-new"),
    path("instances/new/machine/", wizard.MachineStep.as_view(), name="instances-new-machine"),
    path("instances/new/market/", wizard.MarketPartial.as_view(), name="instances-new-market"),
    path("instances/new/keys/", wizard.KeysStep.as_view(), name="instances-new-keys"),
    path("instances/new/confirm/", wizard.ConfirmStep.as_view(), name="instances-new-confirm"),
    path("instances/<str:pk>/", views.DetailPage.as_view(), name="instance"),
    path("instances/<str:pk>/card/", views.CardPartial.as_view(), name="instance-card"),
    path("instances/<str:pk>/live/", views.DetailLivePartial.as_view(), name="instance-live"),
    path("instances/<str:pk>/snapshot/", views.TakeSnapshot.as_view(), name="instance-snapshot"),
    path(
        "instances/<str:pk>/<str:action>/",
        views.InstanceAction.as_view(),
        name="instance-action",
    ),
    path("snapshots/", snapshots.SnapshotsPage.as_view(), name="snapshots"),
    path("snapshots/list/", snapshots.SnapshotListPartial.as_view(), name="snapshot-list"),
    path("snapshots/<str:pk>/row/", snapshots.SnapshotRowPartial.as_view(), name="snapshot-row"),
    path("snapshots/<str:pk>/delete/", snapshots.DeleteSnapshot.as_view(), name="snapshot-delete"),
    path("snapshots/<str:pk>/restore/", snapshots.RestorePage.as_view(), name="snapshot-restore"),
]

"""Tells the places developers look that a deploy started and how it ended.

A push- or CI-triggered deploy of an app with ``notify.scm_status`` appears on its commit (a
GitHub Deployment with ``in_progress`` then its final status; a GitLab or Bitbucket commit
status); an app with ``notify.slack_webhook`` gets a chat message when any deploy ends.

A report never fails or holds up a deploy: the ``StatusBoard`` bounds each report by a short
deadline, and any error is logged (never a secret: errors name references, not values) and
dropped. What the end needs again (the GitHub deployment's id) is kept on the record.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ..domain.errors import NotFoundError, RoadieError
from ..domain.model import Deploy
from ..domain.notice import Notice, on_commit
from ..domain.pipeline import AppConfig, PipelineConfig
from .ports import DeployStore, StatusBoard

logger = logging.getLogger("roadie.notify")

CONSOLE = "https://{region}.console.aws.amazon.com/states/home?region={region}#/v2/executions/details/{arn}"


@dataclass
class Notifier:
    pipeline: PipelineConfig
    deploys: DeployStore
    board: StatusBoard
    region: str = "us-east-1"

    def started(self, deploy: Deploy) -> None:
        app = self._app(deploy)
        if app is None or not self._on_commit(app, deploy):
            return
        try:
            memo = self.board.started(app, self._notice(app, deploy))
        except RoadieError as exc:
            self._dropped("start", deploy, exc)
            return
        if memo:

            def keep(d: Deploy) -> None:
                d.notifications = {**d.notifications, **memo}

            try:
                self.deploys.mutate(deploy.deploy_id, keep)
            except RoadieError as exc:  # the end creates a new deployment instead
                self._dropped("start", deploy, exc)

    def finished(self, deploy: Deploy) -> None:
        app = self._app(deploy)
        if app is None:
            return
        notice = self._notice(app, deploy)
        if self._on_commit(app, deploy):
            try:
                self.board.finished(app, notice, deploy.notifications)
            except RoadieError as exc:
                self._dropped("end", deploy, exc)
        if app.notify.slack_webhook is not None:
            try:
                self.board.chat(app, notice)
            except RoadieError as exc:
                self._dropped("chat", deploy, exc)

    def _app(self, deploy: Deploy) -> AppConfig | None:
        try:
            app = self.pipeline.app(deploy.app)
        except NotFoundError:
            return None  # an app removed from the config since
        return app if app.notify.enabled else None

    @staticmethod
    def _on_commit(app: AppConfig, deploy: Deploy) -> bool:
        return app.notify.scm_status and app.scm is not None and on_commit(deploy)

    def _notice(self, app: AppConfig, deploy: Deploy) -> Notice:
        notify = app.notify
        if notify.log_url:
            log_url = notify.log_url.replace("{deploy_id}", deploy.deploy_id)
        elif deploy.execution_arn:
            log_url = CONSOLE.format(region=self.region, arn=deploy.execution_arn)
        else:
            log_url = ""
        environment_url = notify.environment_urls.get(deploy.environment, "")
        return Notice.of(deploy, app.repository, log_url, environment_url)

    @staticmethod
    def _dropped(what: str, deploy: Deploy, exc: RoadieError) -> None:
        logger.warning("deploy %s: could not report its %s: %s", deploy.deploy_id, what, exc)

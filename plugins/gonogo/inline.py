"""Run a runbook action inside a task that decides at run time what to run.

Undo slots (which step a slot undoes is known only when rollback starts) and
guided steps (which ask a person after a failure, in the same task) cannot be
plain BashOperator/PythonOperator tasks, so they run the action here: the same
command, environment, working directory, quoting and logging.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from typing import Any

from gonogo.runtime import run_http, run_python

log = logging.getLogger("gonogo")

RETRY_PAUSE_SECONDS = 5


class ActionRunner:
    """A mixin for operators: run an action spec (see ``Compiler.action_spec``) with its retries."""

    # ``render_template`` comes from BaseOperator, which every user of this mixin also is.
    render_template: Any

    def run_action(self, action: Mapping[str, Any], context: Any) -> Any:
        run = {"bash": self._bash, "http": self._http, "python": self._python}[action["kind"]]
        attempts = int(action.get("retries", 0)) + 1
        for attempt in range(1, attempts + 1):
            try:
                return run(action, context)
            except Exception as exc:
                if attempt == attempts:
                    raise
                log.warning(
                    "attempt %d of %d failed (%s); trying again in %ss",
                    attempt,
                    attempts,
                    exc,
                    RETRY_PAUSE_SECONDS,
                )
                time.sleep(RETRY_PAUSE_SECONDS)
        return None

    def _bash(self, action: Mapping[str, Any], context: Any) -> Any:
        from airflow.providers.standard.hooks.subprocess import SubprocessHook

        command = str(self.render_template(action["bash"], context)).strip()
        env = {
            **os.environ,
            **{k: str(self.render_template(v, context)) for k, v in action["env"].items()},
        }
        log.info("bash step: %s", command)
        log.info("working directory: %s", action["cwd"])
        result = SubprocessHook().run_command(["bash", "-c", command], env=env, cwd=action["cwd"])
        if result.exit_code != 0:
            raise RuntimeError(f"bash exited with {result.exit_code}: {result.output}")
        return result.output

    def _http(self, action: Mapping[str, Any], context: Any) -> Any:
        return run_http(self.render_template(action["http"], context))

    def _python(self, action: Mapping[str, Any], context: Any) -> Any:
        return run_python(
            action["callable"],
            self.render_template(action["kwargs"], context),
            action["prefixes"],
            action["runbooks_dir"],
            **context,
        )

"""A pytest plugin (pytest.ini: `-p tests.backends.plugin`) for tests/test_backends.py.

- xdist's `--dist loadfile` keeps a module's tests on one worker; the two
  backend runs of tests/test_backends.py (minutes each, one subprocess
  each) are split into a work unit per test and handed out first, one to
  each worker, so they run side by side rather than one after the other
  at the end of the suite.
- The runs' summaries (backend, tests, time, largest differences), which
  the tests record as the `backend_run` user property, are printed at the
  end of the session, also from xdist workers.
"""

import pytest

RUNNER = "tests/test_backends.py"
_SUMMARIES = []


def _scheduling_class():
    from xdist.scheduler import LoadFileScheduling

    class BackendRunsFirst(LoadFileScheduling):
        def _split_scope(self, nodeid):
            scope = super()._split_scope(nodeid)
            return nodeid if scope == RUNNER else scope

        def _assign_work_unit(self, node):
            # A worker's first unit is a backend run while one is left.
            if not self.assigned_work.get(node):
                for scope in list(self.workqueue):
                    if scope.startswith(RUNNER + "::"):
                        self.workqueue.move_to_end(scope, last=False)
                        break
            super()._assign_work_unit(node)

    return BackendRunsFirst


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    if config.getvalue("dist") != "loadfile":
        return None
    return _scheduling_class()(config, log)


def pytest_runtest_logreport(report):
    if report.when == "call" and report.nodeid.startswith(RUNNER + "::"):
        _SUMMARIES.extend(value for name, value in report.user_properties
                          if name == "backend_run")


def pytest_terminal_summary(terminalreporter):
    for line in _SUMMARIES:
        terminalreporter.write_line(line)

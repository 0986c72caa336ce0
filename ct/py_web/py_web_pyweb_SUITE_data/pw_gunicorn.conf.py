"""A gunicorn configuration file as projects write them (py_web_pyweb_SUITE:
gunicorn_command_line): settings, an import, a helper name, a server hook."""

import multiprocessing

bind = "127.0.0.1:0"
workers = 2
threads = 2
raw_env = ["PW_GREETING=from gunicorn.conf.py"]
timeout = 30
accesslog = "-"
max_workers = multiprocessing.cpu_count() * 2 + 1   # not a setting: ignored


def post_fork(server, worker):
    server.log.info("forked %s", worker.pid)

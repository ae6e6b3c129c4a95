"""A real browser for the web client's tests and benchmark: Debian's
headless Chromium driven by puppeteer-core (web_driver.cjs, one JSON
command per line). The npm packages are the build tree's (web/CMakeLists.txt:
MQIM_WEB_NODE_MODULES), the page the build's bundle (MQIM_WEB_DIST)."""
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CHROMIUM = os.environ.get("MQIM_CHROMIUM", "/usr/bin/chromium")


class BrowserError(AssertionError):
    pass


class Browser:
    def __init__(self, node_modules, width=1280, height=800, log=None):
        env = dict(os.environ, NODE_PATH=node_modules)
        self.proc = subprocess.Popen(["node", os.path.join(HERE, "web_driver.cjs")], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=log or sys.stderr, text=True, env=env)
        self.version = self.call("launch", executable=CHROMIUM, width=width, height=height)

    def call(self, cmd, **args):
        self.proc.stdin.write(json.dumps(dict(args, cmd=cmd)) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise BrowserError("the browser driver exited (status %s) during %s" % (self.proc.poll(), cmd))
        answer = json.loads(line)
        if not answer["ok"]:
            raise BrowserError("%s %s: %s" % (cmd, json.dumps(args)[:300], answer["error"]))
        return answer["value"]

    def goto(self, url):
        return self.call("goto", url=url)

    def fill(self, sel, text):
        self.call("fill", sel=sel, text=text)

    def type(self, sel, text):
        self.call("type", sel=sel, text=text)

    def click(self, sel):
        self.call("click", sel=sel)

    def press(self, key):
        self.call("press", key=key)

    def wait(self, expr, timeout=10.0):
        """Until the JavaScript expression is truthy in the page; its value."""
        return self.call("wait", expr=expr, timeout=int(timeout * 1000))

    def eval(self, expr):
        return self.call("eval", expr=expr)

    def upload(self, sel, path):
        self.call("upload", sel=sel, path=path)

    def viewport(self, width, height):
        self.call("viewport", width=width, height=height)

    def screenshot(self, path):
        self.call("screenshot", path=path)

    def close(self):
        if self.proc.poll() is None:
            try:
                self.call("quit")
            except (BrowserError, OSError, ValueError):
                pass
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

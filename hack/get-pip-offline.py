# Stand-in for get-pip.py, which "ansible-test --venv" downloads from a host that
# machines without general internet access cannot reach. hack/dev-env installs
# this file under ~/.ansible/test/cache/ by the name ansible-test looks for.
# Like get-pip.py it installs pip with the arguments it is given (for example
# "pip==24.2 --disable-pip-version-check"): it bootstraps the pip bundled with
# Python (ensurepip) and lets that pip fetch the requested one from the index.
import ensurepip
import os
import subprocess
import sys

# get-pip's own flags, which pip install does not know.
GET_PIP_ONLY = {"--no-setuptools", "--no-wheel"}

environment = dict(os.environ)
ensurepip.bootstrap(upgrade=True)
# A new process: ensurepip switched off pip's configuration (PIP_CONFIG_FILE)
# in this one, and with it the index and CA settings the machine relies on.
arguments = [a for a in sys.argv[1:] if a not in GET_PIP_ONLY]
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install", "--upgrade"] + arguments, env=environment))

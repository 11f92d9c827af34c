# shellcheck shell=bash
# shellcheck disable=SC2034  # the variables are for the scripts that source this file
# What the lease_cycle and lease_portal targets share: the integration config, the
# local cloud's clouds.yaml, the test SMTP server's command and the estate's state file.
config=$(cd ../.. && pwd)/integration_config.yml
conf() { python3 -c 'import json,sys; v=json.load(open(sys.argv[1]))[sys.argv[2]]; print(" ".join(map(str, v)) if isinstance(v, list) else v)' "$config" "$1"; }
OS_CLIENT_CONFIG_FILE=$(conf localcloud_clouds_yaml)
export OS_CLIENT_CONFIG_FILE
read -r -a mailsink <<< "$(conf mailsink)"
state=$OUTPUT_DIR/estate.json

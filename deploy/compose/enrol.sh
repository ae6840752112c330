#!/bin/sh
# compose.yaml's one-shot `enrol` service: what an operator does by hand when a
# council joins (docs/operations.md "Enrol a council"), plus a Prometheus account.
# For each council in $COUNCILS ("CODE=Name=/folder;…", the folder holding the node's
# council_key.pub.pem; node databases from $NODE_DATABASE_URL_TEMPLATE): enrol its key at
# the hub unless the council is enrolled already, and give Prometheus an operator
# token for that node's /metrics; one more for the hub's. Safe to run again.
set -eu

token_for() {  # token_for FILE COMMAND… : an operator account "prometheus" and a token
    file=$1
    shift
    if [ -s "$file" ]; then
        return 0
    fi
    if ! "$@" users list | grep -q '^prometheus '; then
        "$@" users add prometheus --role operator --organisation monitoring \
            --generate-password >/dev/null
    fi
    "$@" users token prometheus --lifetime 365d | tail -n 1 >"$file.tmp"
    # Prometheus runs as another user and must read it; the volume is Prometheus's alone.
    chmod 0644 "$file.tmp"
    mv "$file.tmp" "$file"
    echo "wrote $file"
}

token_for "$TOKEN_DIR/hub.token" national-hub

enrolled=$(national-hub councils list)
old_ifs=$IFS
IFS=';'
for entry in $COUNCILS; do
    IFS=$old_ifs
    code=${entry%%=*}
    rest=${entry#*=}
    name=${rest%%=*}
    folder=${rest#*=}
    if printf '%s\n' "$enrolled" | grep -q "^$code "; then
        echo "$code is enrolled already"
    else
        national-hub councils add "$code" --name "$name" \
            --public-key "$folder/council_key.pub.pem"
    fi
    lower=$(printf '%s' "$code" | tr 'A-Z' 'a-z')
    LOCAL_NODE__COUNCIL__CODE=$code
    LOCAL_NODE__DATABASE__URL=$(printf '%s' "$NODE_DATABASE_URL_TEMPLATE" | sed "s/{council}/$lower/")
    export LOCAL_NODE__COUNCIL__CODE LOCAL_NODE__DATABASE__URL
    token_for "$TOKEN_DIR/$code.token" local-node
done

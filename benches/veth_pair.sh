# Sourced by the live benchmarks: two namespaces made here, joined by a veth pair, removed on
# exit. Usage: veth_pair CAP_IF CAP_ADDR SND_IF SND_ADDR (addresses with their prefix); sets
# $cap and $snd to the namespaces' names. Nothing sent inside them leaves them.
veth_pair() {
    cap=tapir-$1-$$; snd=tapir-$3-$$
    trap 'ip netns del "$cap" 2>/dev/null || true; ip netns del "$snd" 2>/dev/null || true' EXIT
    ip netns add "$cap"; ip netns add "$snd"
    ip link add "$1" netns "$cap" type veth peer name "$3" netns "$snd"
    local ns dev addr
    for spec in "$cap $1 $2" "$snd $3 $4"; do
        read -r ns dev addr <<< "$spec"
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
        ip -n "$ns" addr add "$addr" dev "$dev"; ip -n "$ns" link set "$dev" up
    done
}

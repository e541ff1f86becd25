# Sourced by the check scripts: a Go tool built once from the Go module proxy into .tools/.
#
#   go_tool CALLER NAME PACKAGE VERSION   # prints the binary's path, building it if absent
#
# One package at a time, at low priority, so the build leaves room for whatever runs beside
# it; CGO off: a static binary, no C toolchain. Said first: go prints nothing between its last
# `go: downloading` and the end, and a cold build (modules downloaded and compiled) takes
# minutes. A failed build stops the caller with go's message, never with a binary missing.
go_tool() {
    local caller="$1" name="$2" package="$3" version="$4"
    local dir="$ROOT/.tools/$name-$version"
    if [[ ! -x "$dir/$name" ]]; then
        command -v go >/dev/null || { echo "$caller: go is needed to build $name" >&2; exit 1; }
        echo "$caller: building $name $version into $dir, once; a cold build (modules" \
            "downloaded and compiled) may take a few minutes (GOPROXY=$(go env GOPROXY))" >&2
        mkdir -p "$dir"
        GOBIN="$dir" GOFLAGS=-p=1 CGO_ENABLED=0 nice -n 10 \
            go install "$package@$version" >&2 \
            || { echo "$caller: building $name failed (go's message above)" >&2; exit 1; }
    fi
    echo "$dir/$name"
}

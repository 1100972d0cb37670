# bash completion for weir; installed to
# <prefix>/share/bash-completion/completions/weir.
_weir()
{
    local cur prev cmd
    cur=${COMP_WORDS[COMP_CWORD]}
    prev=${COMP_WORDS[COMP_CWORD-1]}
    cmd=${COMP_WORDS[1]}
    if [ "$COMP_CWORD" -eq 1 ]; then
        COMPREPLY=($(compgen -W "plugins validate run ctl new-plugin --version --help" -- "$cur"))
        return
    fi
    case "$prev" in
        --dir|--from|--out|--savepoint)
            COMPREPLY=($(compgen -d -- "$cur"))
            return ;;
    esac
    case "$cmd" in
        plugins)
            COMPREPLY=($(compgen -W "--dir --json" -- "$cur")) ;;
        validate)
            COMPREPLY=($(compgen -W "--dir" -- "$cur") $(compgen -f -X '!*.y*ml' -- "$cur")) ;;
        run)
            COMPREPLY=($(compgen -W "--dir --from --no-supervisor --help" -- "$cur") $(compgen -f -X '!*.y*ml' -- "$cur")) ;;
        new-plugin)
            COMPREPLY=($(compgen -W "--keyed --source --out --help" -- "$cur")) ;;
        ctl)
            # weir ctl [--dir D] [--timeout T] TARGET COMMAND [ARGS]
            local i n=0
            for ((i = 2; i < COMP_CWORD; i++)); do
                case "${COMP_WORDS[i]}" in
                    --dir|--timeout) i=$((i + 1)) ;;
                    -*) ;;
                    *) n=$((n + 1)) ;;
                esac
            done
            if [ "$n" -eq 0 ]; then
                COMPREPLY=($(compgen -W "--dir --timeout" -- "$cur") $(compgen -f -- "$cur"))
            elif [ "$n" -eq 1 ]; then
                COMPREPLY=($(compgen -W "status checkpoint savepoint stop cancel" -- "$cur"))
            else
                COMPREPLY=($(compgen -W "--json --watch --savepoint" -- "$cur"))
            fi ;;
    esac
}
complete -F _weir weir

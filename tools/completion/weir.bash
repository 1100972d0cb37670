# bash completion for weir; installed to
# <prefix>/share/bash-completion/completions/weir.
# Keep in sync with the usage texts of host/cli/ (tests/cli/test_options.py
# checks that every option they list is offered here).
_weir()
{
    local cur prev cmd
    cur=${COMP_WORDS[COMP_CWORD]}
    prev=${COMP_WORDS[COMP_CWORD-1]}
    cmd=${COMP_WORDS[1]}
    if [ "$COMP_CWORD" -eq 1 ]; then
        COMPREPLY=($(compgen -W "plugins validate run state ctl new-plugin --version --help" -- "$cur"))
        return
    fi
    case "$prev" in
        --dir|-d|--from|--out|--savepoint)
            COMPREPLY=($(compgen -d -- "$cur"))
            return ;;
        --job)
            COMPREPLY=($(compgen -f -X '!*.y*ml' -- "$cur"))
            return ;;
    esac
    case "$cmd" in
        plugins)
            COMPREPLY=($(compgen -W "--dir --json --help" -- "$cur")) ;;
        validate)
            COMPREPLY=($(compgen -W "--dir --json --help" -- "$cur") $(compgen -f -X '!*.y*ml' -- "$cur")) ;;
        run)
            COMPREPLY=($(compgen -W "--dir --from --no-supervisor --allow-non-restored-state --help" -- "$cur") $(compgen -f -X '!*.y*ml' -- "$cur")) ;;
        new-plugin)
            COMPREPLY=($(compgen -W "--keyed --source --out --help" -- "$cur")) ;;
        state)
            if [ "$COMP_CWORD" -eq 2 ]; then
                COMPREPLY=($(compgen -W "ls dump bootstrap" -- "$cur"))
                return
            fi
            case "${COMP_WORDS[2]}" in
                ls) COMPREPLY=($(compgen -W "--json --exact --help" -- "$cur") $(compgen -d -- "$cur")) ;;
                dump) COMPREPLY=($(compgen -W "--operator --state --timers --key --format --value-format --help" -- "$cur") $(compgen -d -- "$cur")) ;;
                bootstrap) COMPREPLY=($(compgen -W "--dir --job --operator --state --from --out --parallelism --kind --value-format --expiry-time --help" -- "$cur")) ;;
            esac ;;
        ctl)
            # weir ctl [--dir D] [--timeout T] TARGET COMMAND [ARGS]
            local i n=0 sub= action=
            for ((i = 2; i < COMP_CWORD; i++)); do
                case "${COMP_WORDS[i]}" in
                    --dir|--timeout|-d|-t) i=$((i + 1)) ;;
                    -*) ;;
                    *) n=$((n + 1))
                       [ "$n" -eq 2 ] && sub=${COMP_WORDS[i]}
                       [ "$n" -eq 3 ] && action=${COMP_WORDS[i]} ;;
                esac
            done
            if [ "$n" -eq 0 ]; then
                COMPREPLY=($(compgen -W "--dir --timeout --help" -- "$cur") $(compgen -f -- "$cur"))
            elif [ "$n" -eq 1 ]; then
                COMPREPLY=($(compgen -W "status checkpoint savepoint stop cancel state" -- "$cur"))
            elif [ "$sub" = state ] && [ "$n" -eq 2 ]; then
                COMPREPLY=($(compgen -W "ttl purge stats" -- "$cur"))
            elif [ "$sub" = state ]; then
                case "$action" in
                    ttl) COMPREPLY=($(compgen -W "--time --json" -- "$cur")) ;;
                    purge) COMPREPLY=($(compgen -W "--prefix --older-than --all --json" -- "$cur")) ;;
                    *) COMPREPLY=($(compgen -W "--json" -- "$cur")) ;;
                esac
            else
                case "$sub" in
                    status) COMPREPLY=($(compgen -W "--json --watch" -- "$cur")) ;;
                    stop) COMPREPLY=($(compgen -W "--savepoint" -- "$cur")) ;;
                    savepoint) COMPREPLY=($(compgen -d -- "$cur")) ;;
                esac
            fi ;;
    esac
}
complete -F _weir weir

# bash completion for p2pctl(1): commands and options, and the peer IDs,
# peer names, services and forwards that a running daemon knows (asked
# with "p2pctl --json", 2 s at most; nothing is offered when no daemon
# answers). Needs plain bash only, not the bash-completion helpers.

_p2pctl_commands='id status peers lookup connect ping bootstrap expose
unexpose services forward unforward forwards pipe name names tunnels
metrics help'
_p2pctl_options='--socket= --json --timeout= --verbose --help --version'

# COMP_WORDS split at ':' and '=' (COMP_WORDBREAKS), so "127.0.0.1:80"
# and "--socket=PATH" arrive in pieces: glue them back into words[] and
# find the word being completed, cword.
_p2pctl_words()
{
	local i w
	words=()
	cword=0
	for ((i = 0; i < ${#COMP_WORDS[@]}; i++)); do
		w=${COMP_WORDS[i]}
		if ((i > 1)) && [[ $w == [=:] || ${COMP_WORDS[i - 1]} == [=:] ]]; then
			words[${#words[@]} - 1]+=$w
		else
			words+=("$w")
		fi
		((i == COMP_CWORD)) && cword=$((${#words[@]} - 1))
	done
}

# Values of one string field in the daemon's answer to a command.
_p2pctl_ask()
{
	"${ctl[@]}" --timeout=2 --json "$1" 2>/dev/null |
		grep -o "\"$2\": *\"[^\"]*\"" | sed 's/.*"\([^"]*\)"$/\1/'
}

# Offer the words in $1 that start with cur; bash replaces only what
# follows the last ':' of cur, so strip up to there.
_p2pctl_offer()
{
	local w pre=
	[[ $cur == *:* && $COMP_WORDBREAKS == *:* ]] && pre=${cur%"${cur##*:}"}
	for w in $(compgen -W "$1" -- "$cur"); do
		COMPREPLY+=("${w#"$pre"}")
	done
	# "--socket=" wants its value right after the '='.
	if [[ ${#COMPREPLY[@]} -eq 1 && ${COMPREPLY[0]} == *= ]]; then
		compopt -o nospace 2>/dev/null
	fi
	return 0
}

_p2pctl()
{
	local words cword cur i w cmd= npos=0
	local ctl=()
	COMPREPLY=()
	_p2pctl_words
	cur=${words[cword]}
	ctl=("${words[0]}")
	# Global options up to the command; the same socket for our questions.
	for ((i = 1; i < cword; i++)); do
		w=${words[i]}
		case $w in
		-s | --socket | --control) ctl+=(-s "${words[i + 1]}") && ((i++)) ;;
		-t | --timeout | -c | --count) ((i++)) ;;
		-s?* | --socket=* | --control=*) ctl+=("$w") ;;
		-*) ;;
		*) [ -z "$cmd" ] && cmd=$w || ((npos++)) ;;
		esac
	done
	case ${words[cword - 1]} in
	-s | --socket | --control)
		COMPREPLY=($(compgen -f -- "$cur"))
		return
		;;
	-t | --timeout | -c | --count) return ;;
	esac
	case $cur in
	--socket=* | --control=*)
		COMPREPLY=($(compgen -f -- "${cur#*=}"))
		return
		;;
	-*)
		_p2pctl_offer "$_p2pctl_options $([ "$cmd" = expose ] && echo "--allow --allow-any")$([ "$cmd" = ping ] && echo " --count=")"
		return
		;;
	esac
	if [ -z "$cmd" ]; then
		_p2pctl_offer "$_p2pctl_commands"
		return
	fi
	_p2pctl_arg "$cmd" "$npos"
}

# Peers linked now, and names once the daemon has them ("names" is
# asked anyway: a daemon without it answers nothing on stdout).
_p2pctl_peers()
{
	_p2pctl_offer "$(_p2pctl_ask peers id) $(_p2pctl_ask names name)"
}

# Argument number $2 (from 0) of command $1.
_p2pctl_arg()
{
	case $1:$2 in
	help:0) _p2pctl_offer "$_p2pctl_commands" ;;
	lookup:0 | connect:0 | ping:0 | pipe:0 | forward:1) _p2pctl_peers ;;
	expose:*) [ "${words[cword - 1]}" = --allow ] && _p2pctl_peers ;;
	unexpose:0) _p2pctl_offer "$(_p2pctl_ask services service)" ;;
	unforward:0) _p2pctl_offer "$(_p2pctl_ask forwards listen)" ;;
	name:0) _p2pctl_offer "add rm" ;;
	name:1) [ "${words[cword - 1]}" = rm ] &&
		_p2pctl_offer "$(_p2pctl_ask names name)" ;;
	name:2) _p2pctl_offer "$(_p2pctl_ask peers id)" ;;
	esac
}

complete -F _p2pctl p2pctl

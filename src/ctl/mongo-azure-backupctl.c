/* mongo-azure-backupctl.c - the admin tool: asks the daemon over its control
 * socket (status, run, cancel, metrics); shows a schedule (next-runs),
 * prunes, lists, verifies and restores backup sets without one.  This file
 * is the command line (usage, options, dispatch); each command lives in a
 * ctl_*.c of its own (ctl_tool.h, ctl_commands.h).
 *
 * For the daemon commands the configuration is read only for [control]
 * socket and [schedule]; an operator in the control group usually cannot
 * read it (mode 0600), so an unreadable default file means the compiled-in
 * defaults.  Exit codes: 0
 * done, 1 the operation (or the awaited run) failed, 2 usage or
 * configuration, 3 no daemon to talk to, 4 not permitted (the socket's
 * permissions, or the daemon's 403 for the command): a script can tell
 * "ask an administrator" from "the daemon is down".
 */
#include "config.h"

#include <bson/bson.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "control_client.h"
#include "cron.h"
#include "cron_tz.h"
#include "ctl_commands.h"
#include "iso8601.h"
#include "mab_config.h"
#include "no_core.h"
#include "ctl_tool.h"

static void usage(FILE *fp)
{
	fprintf(fp,
		"Usage: " PROG " [-c CONF] [-s SOCKET] COMMAND [ARGS]\n"
		"Administers mongo-azure-backupd through its control socket.\n\n"
		"  status [--json]      what the daemon is doing, its schedule and last run\n"
		"  run [--wait]         start a backup now (or join the one in progress);\n"
		"                       --wait shows progress and exits 1 unless it completes\n"
		"  cancel               stop the backup in progress\n"
		"  metrics              Prometheus metrics\n"
		"  next-runs [--tz ZONE] [--from ISO8601] [--count N] [EXPR]\n"
		"                       the next N (default 5, at most 1000) times EXPR (default:\n"
		"                       the configured schedule) fires after --from (default now;\n"
		"                       2026-03-08T01:30:00, local to ZONE unless it ends in Z\n"
		"                       or +HH:MM); needs no daemon\n"
		"  prune [--dry-run]    delete the backup sets [retention] says are too old\n"
		"                       (--dry-run: only print the plan); needs no daemon\n"
		"  list [--json]        the backup sets in storage, newest first\n"
		"  verify [--no-record] [SET|latest|all]\n"
		"                       read a set back and check it against its manifest;\n"
		"                       records the verdict beside it\n"
		"  restore SET (--to-uri URI | --to-uri-file FILE | --to-dir DIR)\n"
		"          [--db DB] [--collection [DB.]C]... [--to-db DB] [--users-and-roles]\n"
		"          [--drop] [--no-indexes] [--dry-run]\n"
		"                       restore a set into MongoDB, or into mongodump's layout\n"
		"                       (list, verify, prune and restore need no daemon)\n\n"
		"  -c, --config CONF    configuration file (default %s)\n"
		"  -s, --socket SOCKET  control socket (default: [control] socket)\n"
		"  -h, --help           this text\n"
		"      --version        print the version and exit\n\n"
		"Exit status: 0 done, 1 failed, 2 usage or configuration error,\n"
		"3 the daemon is not reachable, 4 not permitted.\n",
		MAB_DEFAULT_CONFIG);
}


/* After getopt's own message. */
static int usage_hint(void)
{
	fputs("Try '" PROG " --help'.\n", stderr);
	return EXIT_USAGE;
}

/* ---- command line ------------------------------------------------------ */

/* Options of one subcommand; optind restarts for its own argv. */
static int sub_getopt(int argc, char **argv, const struct option *opts)
{
	return getopt_long(argc, argv, "h", opts, NULL);
}

static int dispatch(struct ctl *c, int argc, char **argv)
{
	const char *cmd = argv[0];
	int opt, r;

	optind = 0;	/* glibc: start afresh on the subcommand's argv */
	argv[0] = (char *)PROG;	/* getopt's messages name the program */
	if (strcmp(cmd, "list") == 0)
		return ctl_list(c->conf_path, c->conf_explicit, argc, argv);
	if (strcmp(cmd, "verify") == 0)
		return ctl_verify(c->conf_path, c->conf_explicit, argc, argv);
	if (strcmp(cmd, "restore") == 0)
		return ctl_restore(c->conf_path, c->conf_explicit, argc, argv);
	if (strcmp(cmd, "prune") == 0) {
		static const struct option opts[] = {
			{ "dry-run", no_argument, NULL, 'n' },
			{ "help", no_argument, NULL, 'h' },
			{ NULL, 0, NULL, 0 },
		};
		bool dry_run = false;
		while ((opt = sub_getopt(argc, argv, opts)) != -1) {
			switch (opt) {
			case 'n': dry_run = true; break;
			case 'h': usage(stdout); return EXIT_OK;
			default: return usage_hint();
			}
		}
		if (optind < argc)
			return usage_error("prune: unexpected argument '%s'", argv[optind]);
		return tool_cmd_prune(c, dry_run);
	}
	if (strcmp(cmd, "next-runs") == 0) {
		static const struct option opts[] = {
			{ "tz", required_argument, NULL, 'z' },
			{ "from", required_argument, NULL, 'f' },
			{ "count", required_argument, NULL, 'n' },
			{ "help", no_argument, NULL, 'h' },
			{ NULL, 0, NULL, 0 },
		};
		struct next_args a = { 0 };
		char *expr = NULL;
		while ((opt = sub_getopt(argc, argv, opts)) != -1) {
			switch (opt) {
			case 'z': a.tz = optarg; break;
			case 'f': a.from = optarg; break;
			case 'n': a.count = optarg; break;
			case 'h': usage(stdout); return EXIT_OK;
			default: return usage_hint();
			}
		}
		/* "next-runs 0 3 '*' '*' '*'" means the same as one quoted word. */
		for (int i = optind; i < argc; i++) {
			size_t old = expr != NULL ? strlen(expr) : 0;
			char *n = realloc(expr, old + strlen(argv[i]) + 2);
			if (n == NULL) {
				free(expr);
				fprintf(stderr, PROG ": out of memory\n");
				return EXIT_FAILED;
			}
			expr = n;
			sprintf(expr + old, "%s%s", old > 0 ? " " : "", argv[i]);
		}
		a.expr = expr;
		r = tool_cmd_next_runs(c, &a);
		free(expr);
		return r;
	}

	bool json = false, wait = false;
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "wait", no_argument, NULL, 'w' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool is_status = strcmp(cmd, "status") == 0, is_run = strcmp(cmd, "run") == 0;
	if (!is_status && !is_run && strcmp(cmd, "cancel") != 0 && strcmp(cmd, "metrics") != 0)
		return usage_error("unknown command '%s'", cmd);
	while ((opt = sub_getopt(argc, argv, opts)) != -1) {
		switch (opt) {
		case 'j':
			if (!is_status)
				return usage_error("%s: unknown option --json", cmd);
			json = true;
			break;
		case 'w':
			if (!is_run)
				return usage_error("%s: unknown option --wait", cmd);
			wait = true;
			break;
		case 'h': usage(stdout); return EXIT_OK;
		default: return usage_hint();
		}
	}
	if (optind < argc)
		return usage_error("%s: unexpected argument '%s'", cmd, argv[optind]);
	r = resolve_socket(c);
	if (r != EXIT_OK)
		return r;
	if (is_status)
		return tool_cmd_status(c, json);
	if (is_run)
		return tool_cmd_run(c, wait);
	if (strcmp(cmd, "cancel") == 0)
		return tool_cmd_cancel(c);
	return tool_cmd_metrics(c);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "socket", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct ctl c = { .conf_path = MAB_DEFAULT_CONFIG };
	int opt, r;

	/* Before anything can read a secret: no core file may hold it. */
	no_core_dumps();
	/* "+": options after the command belong to the command. */
	while ((opt = getopt_long(argc, argv, "+c:s:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'c': c.conf_path = optarg; c.conf_explicit = true; break;
		case 's': c.socket = optarg; break;
		case 'h': usage(stdout); return EXIT_OK;
		case 'V': printf(PROG " %s\n", PACKAGE_VERSION); return EXIT_OK;
		default: return usage_hint();
		}
	}
	if (optind >= argc)
		return usage_error("no command given");
	r = dispatch(&c, argc - optind, argv + optind);
	if (c.cfg_loaded)
		config_free(&c.cfg);
	return r;
}

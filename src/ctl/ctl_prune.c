/* ctl_prune.c - `mongo-azure-backupctl prune [--dry-run]`: runs the
 * prune-sets helper on the configuration.
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

/* ---- prune ------------------------------------------------------------- */

/* Runs the prune-sets helper, which does the work and prints the plan
 * straight to our stdout; its exit status (0, 1, 2) becomes ours.  Only
 * the configuration's path goes on its command line, never a secret. */
int tool_cmd_prune(const struct ctl *c, bool dry_run)
{
	const char *dir = getenv("MAB_LIBEXECDIR");
	char path[4096];
	char *argv[5];
	int n = 0, status;
	pid_t pid;

	if (dir == NULL || *dir == '\0')
		dir = PKGLIBEXECDIR;
	if ((size_t)snprintf(path, sizeof(path), "%s/prune-sets", dir) >= sizeof(path)) {
		fprintf(stderr, PROG ": %s: directory name too long\n", dir);
		return EXIT_FAILED;
	}
	argv[n++] = (char *)"prune-sets";
	argv[n++] = (char *)"-c";
	argv[n++] = (char *)c->conf_path;
	if (dry_run)
		argv[n++] = (char *)"--dry-run";
	argv[n] = NULL;

	/* Nothing buffered may be written twice, by the child too. */
	if (fflush(stdout) != 0 || fflush(stderr) != 0)
		return EXIT_FAILED;
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, PROG ": fork: %s\n", strerror(errno));
		return EXIT_FAILED;
	}
	if (pid == 0) {
		execv(path, argv);
		fprintf(stderr, PROG ": cannot run %s: %s\n", path, strerror(errno));
		_exit(EXIT_FAILED);
	}
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			fprintf(stderr, PROG ": waiting for %s: %s\n", path, strerror(errno));
			return EXIT_FAILED;
		}
	}
	if (WIFSIGNALED(status)) {
		fprintf(stderr, PROG ": %s was killed by signal %d\n", path, WTERMSIG(status));
		return EXIT_FAILED;
	}
	/* 0, 1 and 2 mean the same for both; the helper's 3 (peer gone) is
	 * not our 3 (daemon unreachable). */
	if (!WIFEXITED(status) || WEXITSTATUS(status) > EXIT_USAGE)
		return EXIT_FAILED;
	return WEXITSTATUS(status);
}

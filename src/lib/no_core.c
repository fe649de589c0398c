/* no_core.c - no core dumps, no same-user ptrace (see no_core.h). */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include "no_core.h"

/* Called before the program opened its log: stderr is all there is. */
static void fail(const char *what)
{
	int saved = errno;

	fprintf(stderr, "%s: cannot %s: %s; refusing to run with secrets that a core "
		"file or a debugger could read\n", program_invocation_short_name, what,
		strerror(saved));
	exit(EXIT_FAILURE);
}

void no_core_dumps(void)
{
	/* Hard limit too: nothing this process runs later may raise it again
	 * (only a privileged process could). */
	const struct rlimit none = { .rlim_cur = 0, .rlim_max = 0 };

	/* Non-dumpable first: with fs.suid_dumpable = 0 it alone stops the
	 * kernel from writing a core, whatever the limit, and it is what
	 * refuses ptrace and /proc/PID/mem to other processes of our uid. */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
		fail("mark the process non-dumpable (prctl PR_SET_DUMPABLE)");
	/* The limit covers fs.suid_dumpable = 2, where the kernel dumps even
	 * non-dumpable processes: a core file is never written past it, and a
	 * core_pattern handler is told it (systemd-coredump then keeps no
	 * core).  Every child inherits it, dumpable again after exec or not. */
	if (setrlimit(RLIMIT_CORE, &none) != 0)
		fail("set RLIMIT_CORE to 0");
}

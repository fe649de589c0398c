/* no_core.h - keep a program's memory out of core files and away from
 * other processes of the same user.
 *
 * Every program of the package may hold a secret: the storage account key,
 * a SAS token or the MongoDB password (the supervisor reads them, the
 * helpers get them on a memfd, the ctl reads them for restore, list and
 * verify).  A core file would keep them on disk, readable by whoever gets
 * the file; a same-user peer could read them with ptrace or from
 * /proc/PID/mem.  So the first thing every main() does is no_core_dumps().
 */
#ifndef MAB_NO_CORE_H
#define MAB_NO_CORE_H

/* prctl(PR_SET_DUMPABLE, 0) and RLIMIT_CORE 0 (soft and hard), for this
 * process and everything it forks.  The dumpable flag does not survive
 * execve(), which is why every program calls this itself; the limit does.
 *
 * What it costs: the process's /proc/PID files are owned by root, so a
 * process of the same non-root user cannot read its environ, fd or maps,
 * nor ptrace it (debug as root).  A process may always read its own
 * /proc/self, so /dev/fd/N keeps working.
 *
 * Never returns on failure: it says why on stderr and exits with status 1,
 * since going on would run with the secrets exposed. */
void no_core_dumps(void);

#endif

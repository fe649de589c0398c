/* mongo_log.h - libmongoc's own messages through our log, and no counters
 * file left behind, for the helpers that link libmongoc
 * (export-collection, import-collection).
 */
#ifndef MAB_MONGO_LOG_H
#define MAB_MONGO_LOG_H

/* Call before mongoc_init(): from then on libmongoc's warnings go where
 * ours go ([log] target), not to stderr. */
void mongo_log_to_ours(void);

/* First thing in main().  Unless MONGOC_DISABLE_SHM=1 was in the
 * environment (the supervisor sets it), libmongoc made a
 * /dev/shm/mongoc-PID counters file as it loaded, before main, and removes
 * it only at a clean exit: a helper run by hand or by a test and then
 * killed would leave it for ever.  Unlinked now, the mapping still serves
 * libmongoc and nothing stays behind whatever ends the process. */
void mongo_forget_counters_file(void);

#endif

/* mongo_log.h - libmongoc's own messages through our log, for the helpers
 * that link libmongoc (export-collection, import-collection).
 */
#ifndef MAB_MONGO_LOG_H
#define MAB_MONGO_LOG_H

/* Call before mongoc_init(): from then on libmongoc's warnings go where
 * ours go ([log] target), not to stderr. */
void mongo_log_to_ours(void);

#endif

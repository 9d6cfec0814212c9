/* Symbol visibility: the library builds with -fvisibility=hidden and exports
 * only what is marked HAMOK_API. */
#ifndef HAMOK_EXPORT_H
#define HAMOK_EXPORT_H

#if defined(__GNUC__) || defined(__clang__)
#define HAMOK_API __attribute__((visibility("default")))
#else
#define HAMOK_API
#endif

#endif

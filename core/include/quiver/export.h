/* QV_API marks the symbols a Quiver library exports; everything else is built hidden. */
#ifndef QUIVER_EXPORT_H
#define QUIVER_EXPORT_H

#if defined(__GNUC__)
#define QV_API __attribute__((visibility("default")))
#else
#define QV_API
#endif

#endif /* QUIVER_EXPORT_H */

/* version.h: the version both binaries print (--version). */
#ifndef UD_VERSION_H
#define UD_VERSION_H

#define UD_VERSION "0.1"

#endif

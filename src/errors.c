#include "cbhttp.h"

static const char *const messages[] = {
#define CB_ERR_MSG_(name, msg) msg,
    CB_ERRNO_MAP(CB_ERR_MSG_)
#undef CB_ERR_MSG_
};

CB_EXPORT const char *cb_strerror(cb_err err)
{
    if ((unsigned)err >= (unsigned)CB_ERR_COUNT_)
        return "unknown error";
    return messages[err];
}

CB_EXPORT const char *cbhttp_version(void)
{
#define CBH_STR2_(x) #x
#define CBH_STR_(x) CBH_STR2_(x)
    return CBH_STR_(CBHTTP_VERSION_MAJOR) "." CBH_STR_(CBHTTP_VERSION_MINOR) "." CBH_STR_(
        CBHTTP_VERSION_PATCH);
}

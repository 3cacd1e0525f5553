#include "E2e.h"

// Fixture for the Layers.CheckerFindsUpwardInclude test: a kernel header reaching up into the runtime.
#pragma once
#include "runtime/context.h"

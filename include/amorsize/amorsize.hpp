#pragma once
/// The whole public API of amorsize in one include.

#include <amorsize/cluster.hpp>
#include <amorsize/cost_model.hpp>
#include <amorsize/error.hpp>
#include <amorsize/optimize.hpp>
#include <amorsize/overheads.hpp>
#include <amorsize/plan.hpp>
#include <amorsize/pool.hpp>
#include <amorsize/probe.hpp>
#include <amorsize/sample.hpp>
#include <amorsize/schedule.hpp>
#include <amorsize/session.hpp>
#include <amorsize/source.hpp>
#include <amorsize/stop.hpp>
#include <amorsize/worker.hpp>

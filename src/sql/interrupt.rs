//! Stopping a running query from outside (the shell's Ctrl-C).
//!
//! Dropping a DataFusion stream stops its tasks only when they next wait; an operator
//! that loops inside one poll never does. A nested-loop join, for one, joins each probe
//! batch with every buffered row before it asks for more input, so a dropped
//! `a JOIN b ON a.x + b.y = 1` kept a core busy for seconds. With [`Interrupt`] on the
//! session, every scan and the probe side of such joins check a flag at each batch and
//! end the query with an error once it is set. (Cutting probe batches smaller would
//! answer sooner but slows such joins by a fifth or more: one probe batch of 8,192 rows
//! against 112,120 buffered rows takes about 0.25 s.)

use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::Result as DfResult;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::config::ConfigOptions;
use datafusion::error::DataFusionError;
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::{
    ChildStats, DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, Statistics,
    StatisticsArgs, replace_children_if_necessary,
};
use futures::Stream;

/// The flag of the running query, renewed for each query so that a late check of a
/// cancelled one never sees the next one's flag; and, for a query with a time limit,
/// its deadline, checked at the same places (a timer could not fire while every
/// worker thread is inside such a loop).
#[derive(Clone, Default, Debug)]
pub struct Interrupt {
    flag: Arc<Mutex<Arc<AtomicBool>>>,
    deadline: Option<Instant>,
}

impl Interrupt {
    /// Stops the query at its first check past `deadline`.
    pub fn at(deadline: Instant) -> Interrupt {
        Interrupt {
            deadline: Some(deadline),
            ..Interrupt::default()
        }
    }

    /// A new flag for the query about to be planned.
    pub fn renew(&self) {
        *self.flag.lock().unwrap_or_else(|e| e.into_inner()) = Arc::default();
    }

    /// Stops the running query at its next check.
    pub fn fire(&self) {
        self.current().store(true, Ordering::SeqCst);
    }

    fn current(&self) -> Arc<AtomicBool> {
        self.flag.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The physical optimizer rule that places the checks (run last, on the final plan).
    pub fn rule(&self) -> Arc<dyn PhysicalOptimizerRule + Send + Sync> {
        Arc::new(PlaceChecks(self.clone()))
    }
}

#[derive(Debug)]
struct PlaceChecks(Interrupt);

/// Operators that join each probe batch with a whole buffered side in one poll.
fn loops_over_buffered_side(plan: &dyn ExecutionPlan) -> bool {
    matches!(plan.name(), "NestedLoopJoinExec" | "CrossJoinExec")
}

impl PhysicalOptimizerRule for PlaceChecks {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let flag = self.0.current();
        let deadline = self.0.deadline;
        let check = |input| -> Arc<dyn ExecutionPlan> {
            Arc::new(CheckExec {
                input,
                flag: flag.clone(),
                deadline,
            })
        };
        plan.transform_up(|node| {
            if node.children().is_empty() {
                return Ok(Transformed::yes(check(node)));
            }
            if loops_over_buffered_side(node.as_ref()) {
                let mut children: Vec<_> = node.children().into_iter().cloned().collect();
                if let Some(probe) = children.pop() {
                    children.push(check(probe));
                    return Ok(Transformed::yes(replace_children_if_necessary(
                        node, children,
                    )?));
                }
            }
            Ok(Transformed::no(node))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "place_interrupt_checks"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// Passes its input through, ending it with an error once the flag is set or the
/// deadline has passed.
#[derive(Debug)]
struct CheckExec {
    input: Arc<dyn ExecutionPlan>,
    flag: Arc<AtomicBool>,
    deadline: Option<Instant>,
}

impl DisplayAs for CheckExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InterruptCheckExec")
    }
}

impl ExecutionPlan for CheckExec {
    fn name(&self) -> &str {
        "InterruptCheckExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let input = children.pop().ok_or_else(|| {
            DataFusionError::Internal("InterruptCheckExec needs one child".into())
        })?;
        Ok(Arc::new(CheckExec {
            input,
            flag: self.flag.clone(),
            deadline: self.deadline,
        }))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        Ok(Box::pin(CheckStream {
            input: self.input.execute(partition, context)?,
            flag: self.flag.clone(),
            deadline: self.deadline,
        }))
    }

    fn child_stats_requests(&self, partition: Option<usize>) -> Vec<ChildStats> {
        vec![ChildStats::At(partition)]
    }

    fn statistics_from_inputs(
        &self,
        input_stats: &[Arc<Statistics>],
        _args: &StatisticsArgs,
    ) -> DfResult<Arc<Statistics>> {
        input_stats
            .first()
            .cloned()
            .ok_or_else(|| DataFusionError::Internal("InterruptCheckExec has one child".into()))
    }
}

struct CheckStream {
    input: SendableRecordBatchStream,
    flag: Arc<AtomicBool>,
    deadline: Option<Instant>,
}

impl Stream for CheckStream {
    type Item = DfResult<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.flag.load(Ordering::Relaxed) {
            return Poll::Ready(Some(Err(DataFusionError::Execution("cancelled".into()))));
        }
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return Poll::Ready(Some(Err(DataFusionError::Execution(
                "stopped at its time limit".into(),
            ))));
        }
        self.input.as_mut().poll_next(cx)
    }
}

impl RecordBatchStream for CheckStream {
    fn schema(&self) -> SchemaRef {
        self.input.schema()
    }
}

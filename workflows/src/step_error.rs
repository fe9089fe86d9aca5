//! [`StepError`]: a step's own error (or its panic) as it travels to failure steps and retries.

use std::fmt;
use std::sync::Arc;

use crate::step::BoxError;

enum Kind {
    /// The error the step returned, and the name of the type its signature declared.
    Error {
        error: BoxError,
        type_name: Option<&'static str>,
    },
    /// The step panicked, with this message.
    Panic(String),
    /// Only the text is left: the failure was restored from a snapshot.
    Text(String),
}

/// A step's error as its failure step and its next attempt see it: the step's own error value,
/// which [`downcast_ref`](Self::downcast_ref) gives back as the type the step returned, or a
/// panic. Cloning it is cheap (it is shared). A failure restored from a snapshot has only
/// its text: there, `downcast_ref` gives `None` and [`is_restored`](Self::is_restored) says so.
///
/// ```
/// use workflows::StepError;
///
/// #[derive(Debug)]
/// struct Quota { user: String }
///
/// impl std::fmt::Display for Quota {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
///         write!(f, "quota exceeded for {}", self.user)
///     }
/// }
///
/// impl std::error::Error for Quota {}
///
/// let err = StepError::from_error(Quota { user: "ada".into() });
/// assert_eq!(err.downcast_ref::<Quota>().unwrap().user, "ada");
/// assert_eq!(err.to_string(), "quota exceeded for ada");
/// assert!(!err.is_panic());
/// ```
#[derive(Clone)]
pub struct StepError(Arc<Kind>);

impl StepError {
    /// The error a step returned, typed as its signature declared (`type_name`, when known).
    pub(crate) fn returned(error: BoxError, type_name: Option<&'static str>) -> Self {
        StepError(Arc::new(Kind::Error { error, type_name }))
    }

    /// A panic with `message`.
    pub(crate) fn panic(message: String) -> Self {
        StepError(Arc::new(Kind::Panic(message)))
    }

    /// The text a snapshot kept of a failure.
    pub(crate) fn restored(text: String) -> Self {
        StepError(Arc::new(Kind::Text(text)))
    }

    /// Wraps an error value, as a step returning it would.
    pub fn from_error<E: std::error::Error + Send + Sync + 'static>(error: E) -> Self {
        StepError::returned(Box::new(error), Some(std::any::type_name::<E>()))
    }

    /// The step's error as type `E`, if it is one (the type the step's `Result` names, or the
    /// type inside a `Box<dyn Error>` it returned).
    pub fn downcast_ref<E: std::error::Error + 'static>(&self) -> Option<&E> {
        match &*self.0 {
            Kind::Error { error, .. } => error.downcast_ref::<E>(),
            Kind::Panic(_) | Kind::Text(_) => None,
        }
    }

    /// The step's own error as `&dyn Error` (downcastable to its type), or, for a panic or a
    /// restored failure, this handle.
    pub fn as_error(&self) -> &(dyn std::error::Error + 'static) {
        match &*self.0 {
            Kind::Error { error, .. } => &**error,
            Kind::Panic(_) | Kind::Text(_) => self,
        }
    }

    /// Whether the step panicked rather than returned an error.
    pub fn is_panic(&self) -> bool {
        matches!(&*self.0, Kind::Panic(_))
    }

    /// Whether only the text is left (the failure was restored from a snapshot).
    pub fn is_restored(&self) -> bool {
        matches!(&*self.0, Kind::Text(_))
    }

    /// The Rust type of the error, as the step's signature names it (`panic` for a panic), when
    /// known.
    pub fn type_name(&self) -> Option<&'static str> {
        match &*self.0 {
            Kind::Error { type_name, .. } => *type_name,
            Kind::Panic(_) => Some("panic"),
            Kind::Text(_) => None,
        }
    }

    /// The run's error for this failure of `step` after `attempts`: the step's own error
    /// inside when this is the last handle on it, else a copy that keeps its text.
    pub(crate) fn into_workflow_error(self, step: &str, attempts: u32) -> crate::WorkflowError {
        let step = step.to_owned();
        match Arc::try_unwrap(self.0) {
            Ok(Kind::Error { error, .. }) => crate::WorkflowError::StepFailed {
                step,
                attempts,
                source: error,
            },
            Ok(Kind::Panic(message)) => crate::WorkflowError::StepPanicked {
                step,
                attempts,
                message,
            },
            Ok(Kind::Text(text)) => crate::WorkflowError::StepFailed {
                step,
                attempts,
                source: text.into(),
            },
            Err(shared) => {
                let shared = StepError(shared);
                match &*shared.0 {
                    Kind::Panic(message) => crate::WorkflowError::StepPanicked {
                        step,
                        attempts,
                        message: message.clone(),
                    },
                    _ => crate::WorkflowError::StepFailed {
                        step,
                        attempts,
                        source: Box::new(shared),
                    },
                }
            }
        }
    }
}

impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.0 {
            Kind::Error { error, .. } => fmt::Display::fmt(error, f),
            Kind::Panic(message) => write!(f, "panic: {message}"),
            Kind::Text(text) => f.write_str(text),
        }
    }
}

impl fmt::Debug for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.0 {
            Kind::Error { error, type_name } => f
                .debug_struct("StepError")
                .field("error", error)
                .field("type_name", type_name)
                .finish(),
            Kind::Panic(message) => f.debug_tuple("Panic").field(message).finish(),
            Kind::Text(text) => f.debug_tuple("Restored").field(text).finish(),
        }
    }
}

impl std::error::Error for StepError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &*self.0 {
            Kind::Error { error, .. } => error.source(),
            Kind::Panic(_) | Kind::Text(_) => None,
        }
    }
}

/// Two handles are equal when they share one error.
impl PartialEq for StepError {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for StepError {}

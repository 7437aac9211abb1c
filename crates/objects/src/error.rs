//! The engine's errors, each naming the S3 error code and HTTP status it answers with (mapped
//! in [`ObjectError::code`] and [`ObjectError::status`], nowhere else).

use lambent_store::StoreError;

/// Why an object operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error("the specified bucket does not exist")]
    NoSuchBucket,
    #[error("the specified key does not exist")]
    NoSuchKey,
    #[error("the specified multipart upload does not exist: the upload id may be invalid, or it may have been aborted or completed")]
    NoSuchUpload,
    #[error("the bucket you tried to delete is not empty")]
    BucketNotEmpty,
    #[error("your previous request to create the named bucket succeeded and you already own it")]
    BucketAlreadyOwnedByYou,
    #[error("the requested bucket name is not available: the bucket namespace is shared by all users, select a different name and try again")]
    BucketAlreadyExists,
    #[error("access denied")]
    AccessDenied,
    #[error("the specified bucket is not valid: {0}")]
    InvalidBucketName(String),
    #[error("your key is too long: at most 1024 bytes of UTF-8")]
    KeyTooLong,
    #[error("the requested range is not satisfiable (the object has {size} bytes)")]
    InvalidRange { size: u64 },
    #[error("at least one of the preconditions you specified did not hold")]
    PreconditionFailed,
    #[error("not modified")]
    NotModified,
    #[error("{0}")]
    BadDigest(String),
    #[error("the Content-MD5 you specified is not valid")]
    InvalidDigest,
    #[error("you did not provide the number of bytes specified by the Content-Length HTTP header ({expected} expected, {got} sent)")]
    IncompleteBody { expected: u64, got: u64 },
    #[error("your proposed upload exceeds the maximum allowed size ({max} bytes)")]
    EntityTooLarge { max: u64 },
    #[error("your proposed upload is smaller than the minimum allowed size: every part but the last must be at least 5 MiB")]
    EntityTooSmall,
    #[error("one or more of the specified parts could not be found or its entity tag did not match: {0}")]
    InvalidPart(String),
    #[error("the list of parts was not in ascending order: parts must be ordered by part number")]
    InvalidPartOrder,
    #[error("the XML you provided was not well-formed or did not validate against our published schema: {0}")]
    MalformedXml(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    InvalidRequest(String),
    /// The request body broke off (the client went away or sent a malformed stream).
    #[error("the request body could not be read: {0}")]
    BodyFailed(String),
    /// The namespace's storage quota would be exceeded: nothing was stored.
    #[error("{0}")]
    QuotaExceeded(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("object data i/o error: {0}")]
    Io(#[from] std::io::Error),
}

impl From<lambent_store::tenants::QuotaError> for ObjectError {
    fn from(e: lambent_store::tenants::QuotaError) -> ObjectError {
        match e {
            lambent_store::tenants::QuotaError::Exceeded(m) => ObjectError::QuotaExceeded(m),
            lambent_store::tenants::QuotaError::Store(s) => ObjectError::Store(s),
        }
    }
}

impl ObjectError {
    /// The S3 error code.
    pub fn code(&self) -> &'static str {
        match self {
            ObjectError::NoSuchBucket => "NoSuchBucket",
            ObjectError::NoSuchKey => "NoSuchKey",
            ObjectError::NoSuchUpload => "NoSuchUpload",
            ObjectError::BucketNotEmpty => "BucketNotEmpty",
            ObjectError::BucketAlreadyOwnedByYou => "BucketAlreadyOwnedByYou",
            ObjectError::BucketAlreadyExists => "BucketAlreadyExists",
            ObjectError::AccessDenied => "AccessDenied",
            ObjectError::InvalidBucketName(_) => "InvalidBucketName",
            ObjectError::KeyTooLong => "KeyTooLongError",
            ObjectError::InvalidRange { .. } => "InvalidRange",
            ObjectError::PreconditionFailed => "PreconditionFailed",
            ObjectError::NotModified => "NotModified",
            ObjectError::BadDigest(_) => "BadDigest",
            ObjectError::InvalidDigest => "InvalidDigest",
            ObjectError::IncompleteBody { .. } | ObjectError::BodyFailed(_) => "IncompleteBody",
            ObjectError::EntityTooLarge { .. } => "EntityTooLarge",
            ObjectError::EntityTooSmall => "EntityTooSmall",
            ObjectError::InvalidPart(_) => "InvalidPart",
            ObjectError::InvalidPartOrder => "InvalidPartOrder",
            ObjectError::MalformedXml(_) => "MalformedXML",
            ObjectError::InvalidArgument(_) => "InvalidArgument",
            ObjectError::InvalidRequest(_) => "InvalidRequest",
            ObjectError::QuotaExceeded(_) => "QuotaExceeded",
            ObjectError::Store(StoreError::Unavailable { .. }) => "ServiceUnavailable",
            _ if self.is_disk_full() => "InsufficientStorage",
            ObjectError::Store(_) | ObjectError::Io(_) => "InternalError",
        }
    }

    /// Whether the data disk was full (nothing of the write kept): `507 InsufficientStorage`,
    /// which S3 clients retry like any 5xx.
    pub fn is_disk_full(&self) -> bool {
        match self {
            ObjectError::Store(StoreError::DiskFull(_)) => true,
            ObjectError::Io(e) => lambent_store::is_disk_full(e),
            _ => false,
        }
    }

    /// The HTTP status S3 answers this error with.
    pub fn status(&self) -> u16 {
        match self {
            ObjectError::NoSuchBucket | ObjectError::NoSuchKey | ObjectError::NoSuchUpload => 404,
            ObjectError::BucketNotEmpty
            | ObjectError::BucketAlreadyOwnedByYou
            | ObjectError::BucketAlreadyExists => 409,
            ObjectError::AccessDenied | ObjectError::QuotaExceeded(_) => 403,
            ObjectError::InvalidRange { .. } => 416,
            ObjectError::PreconditionFailed => 412,
            ObjectError::NotModified => 304,
            ObjectError::Store(StoreError::Unavailable { .. }) => 503,
            _ if self.is_disk_full() => 507,
            ObjectError::Store(_) | ObjectError::Io(_) => 500,
            _ => 400,
        }
    }
}

//! A view of the VPC client that can only read: who the credentials are (GetCallerIdentity) and
//! which segments a region holds (DescribeEipSegment). It keeps the client private and gives no way
//! back to it, so code handed this view cannot allocate or release anything, whatever it does.

use crate::cloud::model::SegmentPage;
use crate::cloud::{CloudError, VpcClient};

pub struct ReadOnlyVpc {
    client: VpcClient,
}

impl ReadOnlyVpc {
    /// The client, from now on reachable only through the reads below.
    pub fn new(client: VpcClient) -> Self {
        ReadOnlyVpc { client }
    }

    /// The account the credentials act for (STS GetCallerIdentity).
    pub async fn account(&self) -> Result<String, CloudError> {
        self.client.account().await
    }

    /// How far the cloud's clock runs ahead of this host's, as its last answer dated it.
    pub fn cloud_clock_offset(&self) -> Option<chrono::TimeDelta> {
        self.client.cloud_clock_offset()
    }

    /// One page of the region's segments; only a whole, consistent answer is a page.
    pub async fn segment_page(
        &self,
        region: &str,
        page_number: u32,
        page_size: u32,
    ) -> Result<SegmentPage, CloudError> {
        self.client.describe_segments(region, None, page_number, page_size).await
    }
}

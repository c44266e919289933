// modelauth on Azure Functions, stage 2 of 2: Key Vault events to the keyvaultevents function.
// Deploy it after main.bicep and the zip deploy: Event Grid validates a subscription to a function
// when it is created, which fails until the function exists.
//
//   az deployment group create -g <rg> -f infra/azure/eventgrid.bicep \
//     -p keyVaultName=<main's keyVaultName output> functionAppName=<main's functionAppName output>

@description('The vault of main.bicep (its keyVaultName output).')
param keyVaultName string

@description('The function app of main.bicep (its functionAppName output).')
param functionAppName string

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource app 'Microsoft.Web/sites@2024-04-01' existing = {
  name: functionAppName
}

resource topic 'Microsoft.EventGrid/systemTopics@2022-06-15' = {
  name: '${keyVaultName}-events'
  // A system topic lives in its source's region.
  location: vault.location
  properties: {
    source: vault.id
    topicType: 'Microsoft.KeyVault.vaults'
  }
}

// Events of the secrets the app acts on only: the service keys and their active copies
// (svc-<service>-primary/-secondary/-active), the administrator key and the signing key; and the
// keys of the Azure ML endpoints the app rotates (aml-<endpoint>-primary/-secondary/-active,
// docs/design.md section 15).
// SecretNearExpiry (30 days before a version's exp) and SecretExpired run the same due-check as
// the rotatekeys timer (an event never forces a rotation by itself; admin-key's are ignored); an
// endpoint's due-check also compares its keys with the vault's and repairs drift.
// SecretNewVersionCreated records the version in the change journal, unless the app's own write
// recorded it already, so that every instance learns of a version written from outside the app
// (the portal, the CLI) as of the app's own writes, within two journal slots; for an aml-* secret
// it is ignored (not_tracked): no validator reads an endpoint's keys.
resource keyvaultevents 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2022-06-15' = {
  parent: topic
  name: 'keyvaultevents'
  properties: {
    destination: {
      endpointType: 'AzureFunction'
      properties: {
        resourceId: '${app.id}/functions/keyvaultevents'
        maxEventsPerBatch: 1
        preferredBatchSizeInKilobytes: 64
      }
    }
    eventDeliverySchema: 'EventGridSchema'
    filter: {
      includedEventTypes: [
        'Microsoft.KeyVault.SecretNearExpiry'
        'Microsoft.KeyVault.SecretExpired'
        'Microsoft.KeyVault.SecretNewVersionCreated'
      ]
      advancedFilters: [
        {
          operatorType: 'StringBeginsWith'
          key: 'subject'
          values: ['svc-', 'admin-key', 'signing-key', 'aml-']
        }
      ]
    }
    retryPolicy: {
      maxDeliveryAttempts: 30
      eventTimeToLiveInMinutes: 1440
    }
  }
}

output systemTopicName string = topic.name

// The app's access to one Azure ML online endpoint's keys: main.bicep's custom role "modelauth
// Azure ML endpoint key operator" (read, listKeys/action, regenerateKeys/action and the reads of
// the regenerateKeys operation's polls), assigned to the app's identity on that endpoint only,
// never on its workspace or group. main.bicep deploys it once per amlEndpointIds entry, scoped to
// the endpoint's resource group. See docs/endpoints.md.
//
// To grant an app deployed without it (the role must exist: deploy main.bicep with amlEndpointIds
// first, or create the role with `az role definition create`, docs/endpoints.md):
//
//   az deployment group create -g <the endpoint's resource group> -f infra/azure/aml-endpoint-access.bicep \
//     -p endpointId=<the endpoint's resource ID> principalId=<main's identityPrincipalId output> \
//        roleDefinitionName=<the role's name, a GUID>

@description('The online endpoint\'s ARM resource ID: /subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.MachineLearningServices/workspaces/<ws>/onlineEndpoints/<name>, in this deployment\'s resource group.')
param endpointId string

@description('The object id of the app\'s identity (main.bicep\'s identityPrincipalId output).')
param principalId string

@description('The name (a GUID) of the custom role "modelauth Azure ML endpoint key operator".')
param roleDefinitionName string

// /subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.MachineLearningServices/workspaces/<ws>/onlineEndpoints/<name>
var parts = split(endpointId, '/')

resource endpoint 'Microsoft.MachineLearningServices/workspaces/onlineEndpoints@2024-04-01' existing = {
  name: '${parts[8]}/${parts[10]}'
}

resource keyOperator 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(endpoint.id, principalId, roleDefinitionName)
  scope: endpoint
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleDefinitionName)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

output endpointId string = endpoint.id
